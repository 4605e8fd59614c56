//! Integrity of uploaded bodies: Content-MD5 and the flexible checksums (CRC32, CRC32C,
//! CRC64NVME, SHA1, SHA256) given as headers or as aws-chunked trailers.
//!
//! `s3s` passes trailing checksums through unverified and never checks Content-MD5; this module
//! is where Coffer checks both, before an object is committed. A mismatch is `BadDigest` and
//! the upload leaves no trace.

use crate::error::api_error;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{S3Result, TrailingHeaders};

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
                    .map_err(|_| api_error!(InvalidArgument, "trailer {name} is not valid text")),
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
    // The SDKs declare the algorithm of PutObject and UploadPart in x-amz-sdk-checksum-algorithm,
    // which `s3s` 0.14 does not read into the input (it reads x-amz-checksum-algorithm).
    let sdk_declared = headers
        .get("x-amz-sdk-checksum-algorithm")
        .and_then(|v| v.to_str().ok())
        .map(|v| ChecksumAlgorithm::from(v.to_owned()));
    let algorithm = algorithm.or(sdk_declared.as_ref());
    let in_headers = claimed_algorithms(claimed);
    if in_headers.len() > 1 {
        return Err(api_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    if let (Some(declared), Some(given)) = (algorithm, in_headers.first())
        && !declared.as_str().eq_ignore_ascii_case(given)
    {
        return Err(api_error!(
            InvalidRequest,
            "Value for x-amz-sdk-checksum-algorithm header is invalid: the declared algorithm is {}, the request carries x-amz-checksum-{}",
            declared.as_str(),
            given.to_ascii_lowercase()
        ));
    }
    let mut h = ChecksumHasher {
        crc64nvme: Some(Default::default()),
        ..Default::default()
    };
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut enable = |name: &str| enable_algorithm(&mut h, name);
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

/// Makes `h` compute the checksum named `name` (upper case); an unknown name is S3's
/// InvalidRequest.
fn enable_algorithm(h: &mut ChecksumHasher, name: &str) -> S3Result<()> {
    match name {
        ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
        ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
        ChecksumAlgorithm::CRC64NVME => h.crc64nvme = Some(Default::default()),
        ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
        ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
        other => {
            return Err(api_error!(
                InvalidRequest,
                "Value for x-amz-checksum-algorithm header is invalid: {other:?}; expected CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"
            ));
        }
    }
    Ok(())
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
            return Err(api_error!(
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
            api_error!(
                InvalidDigest,
                "The Content-MD5 you specified is not valid base64 of 16 bytes."
            )
        })?;
    if decoded != md5 {
        return Err(api_error!(
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
                    .map_err(|_| api_error!(InvalidArgument, "header {name} is not valid text"))
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

/// The algorithms of the checksums a request claims (as headers or trailers).
fn claimed_algorithms(claimed: &Claimed) -> Vec<&'static str> {
    [
        (claimed.crc32.is_some(), ChecksumAlgorithm::CRC32),
        (claimed.crc32c.is_some(), ChecksumAlgorithm::CRC32C),
        (claimed.crc64nvme.is_some(), ChecksumAlgorithm::CRC64NVME),
        (claimed.sha1.is_some(), ChecksumAlgorithm::SHA1),
        (claimed.sha256.is_some(), ChecksumAlgorithm::SHA256),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect()
}

/// A part of an upload created with `ChecksumAlgorithm` must not name another algorithm (S3's
/// `InvalidRequest`, "Checksum Type mismatch").
pub fn check_part_algorithm(
    upload_algorithm: Option<&str>,
    declared: Option<&ChecksumAlgorithm>,
    claimed: &Claimed,
) -> S3Result<()> {
    let Some(expected) = upload_algorithm else {
        return Ok(());
    };
    let mut named = claimed_algorithms(claimed);
    if let Some(declared) = declared {
        named.push(declared.as_str());
    }
    if let Some(other) = named.iter().find(|a| !a.eq_ignore_ascii_case(expected)) {
        return Err(api_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            expected.to_ascii_lowercase(),
            other.to_ascii_lowercase()
        ));
    }
    Ok(())
}

/// One `<Part>` of CompleteMultipartUpload against the part as stored: every checksum it gives
/// must be the part's (`InvalidPart`), and an upload created with `ChecksumAlgorithm` needs
/// that checksum for every part (`InvalidRequest`).
pub fn check_completed_part(
    upload_algorithm: Option<&str>,
    requested: &s3s::dto::CompletedPart,
    stored: &coffer_store::PartLayout,
) -> S3Result<()> {
    let given = [
        (
            ChecksumAlgorithm::CRC32,
            &requested.checksum_crc32,
            &stored.checksums.crc32,
        ),
        (
            ChecksumAlgorithm::CRC32C,
            &requested.checksum_crc32c,
            &stored.checksums.crc32c,
        ),
        (
            ChecksumAlgorithm::CRC64NVME,
            &requested.checksum_crc64nvme,
            &stored.checksums.crc64nvme,
        ),
        (
            ChecksumAlgorithm::SHA1,
            &requested.checksum_sha1,
            &stored.checksums.sha1,
        ),
        (
            ChecksumAlgorithm::SHA256,
            &requested.checksum_sha256,
            &stored.checksums.sha256,
        ),
    ];
    for (name, want, have) in given {
        if let Some(want) = want
            && Some(want) != have.as_ref()
        {
            return Err(api_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified {name} checksum may not match the part's checksum (part {})",
                stored.part_number
            ));
        }
        if upload_algorithm.is_some_and(|a| a.eq_ignore_ascii_case(name)) && want.is_none() {
            return Err(api_error!(
                InvalidRequest,
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                name.to_ascii_lowercase(),
                stored.part_number
            ));
        }
    }
    Ok(())
}

/// The checksum type of a new multipart upload: what `x-amz-checksum-type` asks for, or the
/// algorithm's default (FULL_OBJECT for CRC64NVME, COMPOSITE for the others); `None` without an
/// algorithm. S3's combinations: FULL_OBJECT with the CRCs, COMPOSITE with all but CRC64NVME.
pub fn multipart_checksum_type(
    algorithm: Option<&ChecksumAlgorithm>,
    requested: Option<&s3s::dto::ChecksumType>,
) -> S3Result<Option<String>> {
    let Some(algorithm) = algorithm.map(|a| a.as_str().to_ascii_uppercase()) else {
        if requested.is_some() {
            return Err(api_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        return Ok(None);
    };
    let crc = matches!(
        algorithm.as_str(),
        ChecksumAlgorithm::CRC32 | ChecksumAlgorithm::CRC32C | ChecksumAlgorithm::CRC64NVME
    );
    let kind = match requested.map(|t| t.as_str().to_ascii_uppercase()) {
        None if algorithm == ChecksumAlgorithm::CRC64NVME => FULL_OBJECT.to_owned(),
        None => COMPOSITE.to_owned(),
        Some(kind) => kind,
    };
    let allowed = match kind.as_str() {
        FULL_OBJECT => crc,
        COMPOSITE => algorithm != ChecksumAlgorithm::CRC64NVME,
        _ => false,
    };
    if !allowed {
        return Err(api_error!(
            InvalidRequest,
            "The {algorithm} checksum algorithm does not support the {kind} checksum type."
        ));
    }
    Ok(Some(kind))
}

const FULL_OBJECT: &str = "FULL_OBJECT";
const COMPOSITE: &str = "COMPOSITE";

/// The checksum of a completed multipart object, as S3 gives it: for an upload created with a
/// checksum algorithm, that algorithm's COMPOSITE checksum (over the concatenated part checksums,
/// suffixed `-<parts>`) or FULL_OBJECT CRC (combined from the parts' CRCs, as if computed over the
/// whole body) as `checksum_type` says; without one, the FULL_OBJECT CRC64NVME S3 keeps for
/// every object. Parts missing the needed checksum leave the object without one.
pub fn multipart_checksums(
    upload_algorithm: Option<&str>,
    checksum_type: Option<&str>,
    parts: &[coffer_store::PartLayout],
) -> coffer_store::Checksums {
    let algorithm = upload_algorithm
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| ChecksumAlgorithm::CRC64NVME.to_owned());
    let pick = |c: &coffer_store::Checksums| match algorithm.as_str() {
        ChecksumAlgorithm::CRC32 => c.crc32.clone(),
        ChecksumAlgorithm::CRC32C => c.crc32c.clone(),
        ChecksumAlgorithm::CRC64NVME => c.crc64nvme.clone(),
        ChecksumAlgorithm::SHA1 => c.sha1.clone(),
        _ => c.sha256.clone(),
    };
    let Some(raw_parts) = parts
        .iter()
        .map(|p| pick(&p.checksums).and_then(|v| B64.decode(v).ok()))
        .collect::<Option<Vec<Vec<u8>>>>()
    else {
        return coffer_store::Checksums::default();
    };
    let full_object = match checksum_type {
        Some(kind) => kind.eq_ignore_ascii_case(FULL_OBJECT),
        None => algorithm == ChecksumAlgorithm::CRC64NVME,
    };
    let value = if full_object {
        let Some(crc) = combine_crcs(&algorithm, &raw_parts, parts) else {
            return coffer_store::Checksums::default();
        };
        crc
    } else {
        let mut hasher = ChecksumHasher::default();
        if enable_algorithm(&mut hasher, &algorithm).is_err() {
            return coffer_store::Checksums::default();
        }
        hasher.update(&raw_parts.concat());
        let whole = hasher.finalize();
        let Some(v) = whole
            .checksum_crc32
            .or(whole.checksum_crc32c)
            .or(whole.checksum_sha1)
            .or(whole.checksum_sha256)
        else {
            return coffer_store::Checksums::default();
        };
        format!("{v}-{}", parts.len())
    };
    let mut out = coffer_store::Checksums {
        checksum_type: Some(if full_object { FULL_OBJECT } else { COMPOSITE }.to_owned()),
        ..Default::default()
    };
    let slot = match algorithm.as_str() {
        ChecksumAlgorithm::CRC32 => &mut out.crc32,
        ChecksumAlgorithm::CRC32C => &mut out.crc32c,
        ChecksumAlgorithm::CRC64NVME => &mut out.crc64nvme,
        ChecksumAlgorithm::SHA1 => &mut out.sha1,
        _ => &mut out.sha256,
    };
    *slot = Some(value);
    out
}

/// The CRC of the whole body from the parts' CRCs (big-endian bytes, as S3 encodes them) and
/// sizes, base64-encoded; `None` for a non-CRC algorithm or a malformed part value.
fn combine_crcs(
    algorithm: &str,
    raw_parts: &[Vec<u8>],
    parts: &[coffer_store::PartLayout],
) -> Option<String> {
    use crc_fast::CrcAlgorithm;
    let (crc_algorithm, width) = match algorithm {
        ChecksumAlgorithm::CRC32 => (CrcAlgorithm::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::CRC32C => (CrcAlgorithm::Crc32Iscsi, 4),
        ChecksumAlgorithm::CRC64NVME => (CrcAlgorithm::Crc64Nvme, 8),
        _ => return None,
    };
    let mut combined: Option<u64> = None;
    for (raw, part) in raw_parts.iter().zip(parts) {
        if raw.len() != width {
            return None;
        }
        let crc = raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        combined = Some(match combined {
            None => crc,
            Some(sofar) => crc_fast::checksum_combine(crc_algorithm, sofar, crc, part.size),
        });
    }
    let crc = combined?;
    Some(B64.encode(&crc.to_be_bytes()[8 - width..]))
}

/// The whole-object checksum a CompleteMultipartUpload request claims, against the object's:
/// a different value is `BadDigest` (a composite value may be given with or without its `-N`).
pub fn check_object_checksum(claimed: &Claimed, object: &coffer_store::Checksums) -> S3Result<()> {
    let pairs = [
        ("CRC32", &claimed.crc32, &object.crc32),
        ("CRC32C", &claimed.crc32c, &object.crc32c),
        ("CRC64NVME", &claimed.crc64nvme, &object.crc64nvme),
        ("SHA1", &claimed.sha1, &object.sha1),
        ("SHA256", &claimed.sha256, &object.sha256),
    ];
    for (name, want, have) in pairs {
        let Some(want) = want else { continue };
        let matches = have.as_deref().is_some_and(|have| {
            have == want || have.rsplit_once('-').is_some_and(|(v, _)| v == want)
        });
        if !matches {
            return Err(api_error!(
                BadDigest,
                "The {name} you specified for the multipart object did not match the calculated checksum."
            ));
        }
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

    fn part_with_crc64(number: u32, data: &[u8]) -> coffer_store::PartLayout {
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data);
        coffer_store::PartLayout {
            part_number: number,
            blob_id: String::new(),
            size: data.len() as u64,
            nonce_prefix: Vec::new(),
            part_salt: None,
            etag: String::new(),
            checksums: coffer_store::Checksums {
                crc64nvme: Some(B64.encode(crc.to_be_bytes())),
                ..Default::default()
            },
            inline: false,
            mac: None,
        }
    }

    #[test]
    fn a_multipart_objects_crc64nvme_is_that_of_the_whole_body() {
        let (a, b, c) = (vec![7u8; 5000], b"second part".to_vec(), vec![0u8; 3]);
        let parts = [
            part_with_crc64(1, &a),
            part_with_crc64(2, &b),
            part_with_crc64(3, &c),
        ];
        let whole = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &[a, b, c].concat());
        let got = multipart_checksums(None, None, &parts);
        assert_eq!(got.crc64nvme, Some(B64.encode(whole.to_be_bytes())));
        assert_eq!(got.checksum_type.as_deref(), Some("FULL_OBJECT"));
        // A part without the checksum (made before it was kept) leaves the object without one.
        let mut bare = parts.to_vec();
        bare[1].checksums.crc64nvme = None;
        assert_eq!(multipart_checksums(None, None, &bare).crc64nvme, None);
    }

    #[test]
    fn a_part_naming_another_algorithm_than_its_upload_is_invalid_request() {
        let claimed = Claimed {
            crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        let err = check_part_algorithm(Some("SHA256"), None, &claimed).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidRequest);
        assert!(check_part_algorithm(Some("CRC32"), None, &claimed).is_ok());
        assert!(check_part_algorithm(None, None, &claimed).is_ok());
    }

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
