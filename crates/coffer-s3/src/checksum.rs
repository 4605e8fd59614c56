//! Integrity of uploaded bodies: Content-MD5 and the flexible checksums (CRC32, CRC32C,
//! CRC64NVME, SHA1, SHA256) given as headers or as aws-chunked trailers.
//!
//! `s3s` passes trailing checksums through unverified and never checks Content-MD5; this module
//! is where Coffer checks both, before an object is committed. A mismatch is `BadDigest` and
//! the upload leaves no trace.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{S3Result, TrailingHeaders, s3_error};

/// The checksums a client claims for a body (headers first, trailers merged in after the body).
#[derive(Default, Clone)]
pub struct Claimed {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Claimed {
    /// Merges checksums that arrived as aws-chunked trailers (valid once the body is read).
    pub fn merge_trailers(&mut self, trailers: Option<&TrailingHeaders>) -> S3Result<()> {
        let Some(map) = trailers.and_then(TrailingHeaders::take) else {
            return Ok(());
        };
        let get = |name: &str| -> S3Result<Option<String>> {
            match map.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.to_owned()))
                    .map_err(|_| s3_error!(InvalidArgument, "trailer {name} is not valid text")),
            }
        };
        if let Some(v) = get("x-amz-checksum-crc32")? {
            self.crc32 = Some(v);
        }
        if let Some(v) = get("x-amz-checksum-crc32c")? {
            self.crc32c = Some(v);
        }
        if let Some(v) = get("x-amz-checksum-crc64nvme")? {
            self.crc64nvme = Some(v);
        }
        if let Some(v) = get("x-amz-checksum-sha1")? {
            self.sha1 = Some(v);
        }
        if let Some(v) = get("x-amz-checksum-sha256")? {
            self.sha256 = Some(v);
        }
        Ok(())
    }
}

/// A hasher computing every checksum the request names (as a header, as the declared
/// algorithm, or as an announced trailer), plus CRC64NVME, which S3 keeps for every object.
pub fn hasher_for(
    claimed: &Claimed,
    algorithm: Option<&ChecksumAlgorithm>,
    headers: &HeaderMap,
) -> S3Result<ChecksumHasher> {
    let mut h = ChecksumHasher {
        crc64nvme: Some(Default::default()),
        ..Default::default()
    };
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut enable = |name: &str| -> S3Result<()> {
        match name {
            ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
            ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
            ChecksumAlgorithm::CRC64NVME => {}
            ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
            ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
            other => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-algorithm header is invalid: {other:?}; expected CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"
                ));
            }
        }
        Ok(())
    };
    if let Some(alg) = algorithm {
        enable(&alg.as_str().to_ascii_uppercase())?;
    }
    for (present, name) in [
        (
            claimed.crc32.is_some()
                || trailer.contains("x-amz-checksum-crc32") && !trailer.contains("crc32c"),
            ChecksumAlgorithm::CRC32,
        ),
        (
            claimed.crc32c.is_some() || trailer.contains("x-amz-checksum-crc32c"),
            ChecksumAlgorithm::CRC32C,
        ),
        (
            claimed.sha1.is_some() || trailer.contains("x-amz-checksum-sha1"),
            ChecksumAlgorithm::SHA1,
        ),
        (
            claimed.sha256.is_some() || trailer.contains("x-amz-checksum-sha256"),
            ChecksumAlgorithm::SHA256,
        ),
    ] {
        if present {
            enable(name)?;
        }
    }
    Ok(h)
}

/// Compares every claimed checksum with the computed one; any difference is `BadDigest`.
pub fn verify(claimed: &Claimed, computed: &Checksum) -> S3Result<()> {
    let pairs = [
        ("CRC32", &claimed.crc32, &computed.checksum_crc32),
        ("CRC32C", &claimed.crc32c, &computed.checksum_crc32c),
        (
            "CRC64NVME",
            &claimed.crc64nvme,
            &computed.checksum_crc64nvme,
        ),
        ("SHA1", &claimed.sha1, &computed.checksum_sha1),
        ("SHA256", &claimed.sha256, &computed.checksum_sha256),
    ];
    for (name, want, got) in pairs {
        if let Some(want) = want
            && Some(want) != got.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "The {name} you specified did not match the calculated checksum."
            ));
        }
    }
    Ok(())
}

/// Checks a `Content-MD5` header against the body's MD5.
pub fn check_content_md5(content_md5: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    let Some(given) = content_md5 else {
        return Ok(());
    };
    let decoded = B64
        .decode(given.trim())
        .ok()
        .filter(|d| d.len() == 16)
        .ok_or_else(|| {
            s3_error!(
                InvalidDigest,
                "The Content-MD5 you specified is not valid base64 of 16 bytes."
            )
        })?;
    if decoded != md5 {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    Ok(())
}

/// Checks `Content-MD5` and any `x-amz-checksum-*` header against a whole request body held in
/// memory — the XML and JSON bodies of DeleteObjects, CompleteMultipartUpload, CreateBucket and
/// the bucket configuration calls, which `s3s` parses without checking either.
pub fn check_whole_body(headers: &HeaderMap, body: &[u8]) -> S3Result<()> {
    let header = |name: &str| -> S3Result<Option<String>> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| s3_error!(InvalidArgument, "header {name} is not valid text"))
            })
            .transpose()
    };
    let claimed = Claimed {
        crc32: header("x-amz-checksum-crc32")?,
        crc32c: header("x-amz-checksum-crc32c")?,
        crc64nvme: header("x-amz-checksum-crc64nvme")?,
        sha1: header("x-amz-checksum-sha1")?,
        sha256: header("x-amz-checksum-sha256")?,
    };
    let mut hasher = hasher_for(&claimed, None, headers)?;
    hasher.update(body);
    verify(&claimed, &hasher.finalize())?;
    if let Some(content_md5) = header("content-md5")? {
        let mut md5 = coffer_crypto::Md5::new();
        md5.update(body);
        check_content_md5(Some(&content_md5), &md5.finalize())?;
    }
    Ok(())
}

/// The computed checksums as the store records them.
pub fn to_store(c: &Checksum) -> coffer_store::Checksums {
    coffer_store::Checksums {
        crc32: c.checksum_crc32.clone(),
        crc32c: c.checksum_crc32c.clone(),
        crc64nvme: c.checksum_crc64nvme.clone(),
        sha1: c.checksum_sha1.clone(),
        sha256: c.checksum_sha256.clone(),
        checksum_type: Some("FULL_OBJECT".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_mismatch_is_bad_digest() {
        let md5 = [0u8; 16];
        assert!(check_content_md5(Some(&B64.encode([0u8; 16])), &md5).is_ok());
        let err = check_content_md5(Some(&B64.encode([1u8; 16])), &md5).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::BadDigest);
        let err = check_content_md5(Some("not base64!"), &md5).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidDigest);
    }

    #[test]
    fn claimed_crc32_is_verified() {
        let claimed = Claimed {
            crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        let mut h = hasher_for(&claimed, None, &HeaderMap::new()).unwrap();
        h.update(b"hello");
        let computed = h.finalize();
        assert!(computed.checksum_crc64nvme.is_some());
        let err = verify(&claimed, &computed).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::BadDigest);
        let ok = Claimed {
            crc32: computed.checksum_crc32.clone(),
            ..Default::default()
        };
        assert!(verify(&ok, &computed).is_ok());
    }
}
